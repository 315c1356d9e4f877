package main

import (
	"strings"
	"testing"
	"time"
)

func TestParsePIDFile(t *testing.T) {
	started := time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		in      string
		wantPID int
		wantErr bool
	}{
		{"bare", "4242\n", 4242, false},
		{"bare without newline", "4242", 4242, false},
		{"spaces", "  4242  \n", 4242, false},
		{"with json", "4242\n{\"started_at\":\"2026-11-25T18:00:00Z\",\"exe\":\"/usr/bin/difflore\",\"version\":\"v1\"}\n", 4242, false},
		{"crlf", "4242\r\n", 4242, false},
		{"empty", "", 0, true},
		{"blank", "\n\n", 0, true},
		{"negative", "-1\n", 0, true},
		{"zero", "0\n", 0, true},
		{"init", "1\n", 0, true},
		{"garbage", "garbage\n", 0, true},
		{"plus sign", "+42\n", 0, true},
		{"hex", "0x10\n", 0, true},
		{"huge", "99999999999999999999\n", 0, true},
		{"above int32", "4294967296\n", 0, true},
		{"two numbers", "42 43\n", 0, true},
		{"bad json", "4242\n{not json\n", 0, true},
		{"json first", "{\"pid\":4242}\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := parsePIDFile([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parsePIDFile(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if info.PID != tt.wantPID {
				t.Errorf("parsePIDFile(%q) pid = %d, want %d", tt.in, info.PID, tt.wantPID)
			}
			if tt.name == "with json" && (!info.StartedAt.Equal(started) || info.Exe != "/usr/bin/difflore" || info.Version != "v1") {
				t.Errorf("parsePIDFile(%q) = %+v, want the JSON fields", tt.in, info)
			}
		})
	}
	// What difflore writes, it reads back.
	in := pidInfo{PID: 77, StartedAt: started, Exe: "/x/difflore", Version: "v2", Lock: "fd00:2a"}
	out, err := parsePIDFile(formatPIDFile(in))
	if err != nil || out != in {
		t.Errorf("round trip: got %+v, %v; want %+v", out, err, in)
	}
	// Line 1 is the PID alone, for systemd's PIDFile= and pkill -F.
	if first, _, _ := strings.Cut(string(formatPIDFile(in)), "\n"); first != "77" {
		t.Errorf("line 1 = %q, want %q", first, "77")
	}
}
