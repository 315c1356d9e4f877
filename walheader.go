package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// walHeaderSize is the size of a WAL file's header, and walFrameHeader
// that of the header of each frame behind it.
const (
	walHeaderSize  = 32
	walFrameHeader = 24
	walVersion     = 3007000
	walMagicLE     = 0x377f0682 // checksums of little-endian words
	walMagicBE     = 0x377f0683 // of big-endian words
)

// walGarbage reports whether the file at path is a WAL that SQLite would
// ignore: a whole header that does not start with either magic number, or
// whose checksum does not match. SQLite writes no such file; a disk or a
// program that wrote garbage over it did, and what it held is lost without
// any error from SQLite, so the daemon treats it as a corrupt outbox (and
// the salvage mends the header, repairWALHeader).
func walGarbage(path string) bool {
	f, err := openRegular(path, os.O_RDONLY, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [walHeaderSize]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return false
	}
	return !walHeaderValid(b[:])
}

// walHeaderValid reports whether b, a WAL header, has a magic number and a
// checksum that match.
func walHeaderValid(b []byte) bool {
	bo, ok := walOrder(binary.BigEndian.Uint32(b))
	if !ok {
		return false
	}
	s0, s1 := walChecksum(bo, 0, 0, b[:24])
	return s0 == binary.BigEndian.Uint32(b[24:]) && s1 == binary.BigEndian.Uint32(b[28:])
}

// walOrder is the byte order of the checksummed words that a WAL's magic
// number says.
func walOrder(magic uint32) (binary.ByteOrder, bool) {
	switch magic {
	case walMagicLE:
		return binary.LittleEndian, true
	case walMagicBE:
		return binary.BigEndian, true
	}
	return nil, false
}

// walChecksum is SQLite's WAL checksum of b (a multiple of 8 bytes) from
// the running sums s0, s1.
func walChecksum(bo binary.ByteOrder, s0, s1 uint32, b []byte) (uint32, uint32) {
	for i := 0; i+8 <= len(b); i += 8 {
		s0 += bo.Uint32(b[i:]) + s1
		s1 += bo.Uint32(b[i+4:]) + s0
	}
	return s0, s1
}

// walUnsum runs walChecksum backwards: the sums before b, given those
// after it.
func walUnsum(bo binary.ByteOrder, s0, s1 uint32, b []byte) (uint32, uint32) {
	for i := len(b) - 8; i >= 0; i -= 8 {
		p1 := s1 - bo.Uint32(b[i+4:]) - s0
		p0 := s0 - bo.Uint32(b[i:]) - p1
		s0, s1 = p0, p1
	}
	return s0, s1
}

// repairWALHeader writes a WAL header anew over a damaged one, from what
// the first frame holds: its salts, and a checksum that runs from the
// header's. The checksum of the first frame, run backwards over the frame,
// gives the header's checksum; that, run backwards over the salts, gives
// the sums the header's checkpoint sequence must lead to, which fixes it.
// Only a header consistent with every known field is written, so the
// frames SQLite then applies are those it would have applied before the
// damage. The old header is kept as <path>-header. pageSizes are the page
// sizes to try, the database's first.
func repairWALHeader(path string, pageSizes []int) error {
	f, err := os.OpenFile(path, os.O_RDWR|oNoFollow, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	old := make([]byte, walHeaderSize)
	if _, err := io.ReadFull(f, old); err != nil {
		return fmt.Errorf("read wal header: %w", err)
	}
	for _, size := range pageSizes {
		frame := make([]byte, walFrameHeader+size)
		if _, err := f.ReadAt(frame, walHeaderSize); err != nil {
			continue
		}
		for _, magic := range []uint32{walMagicLE, walMagicBE} {
			hdr, ok := walHeaderFor(magic, size, frame)
			if !ok {
				continue
			}
			if err := os.WriteFile(path+"-header", old, 0o600); err != nil {
				return err
			}
			if _, err := f.WriteAt(hdr, 0); err != nil {
				return fmt.Errorf("write wal header: %w", err)
			}
			return f.Sync()
		}
	}
	return errors.New("no wal header fits the first frame")
}

// walHeaderFor is the WAL header with the given magic number and page
// size that the first frame (its header and page) checksums from, if one
// does.
func walHeaderFor(magic uint32, pageSize int, frame []byte) ([]byte, bool) {
	bo, _ := walOrder(magic)
	// The frame's checksum covers its first 8 bytes and its page.
	body := append(append([]byte(nil), frame[:8]...), frame[walFrameHeader:]...)
	h0, h1 := walUnsum(bo, binary.BigEndian.Uint32(frame[16:]), binary.BigEndian.Uint32(frame[20:]), body)
	hdr := make([]byte, walHeaderSize)
	binary.BigEndian.PutUint32(hdr[0:], magic)
	binary.BigEndian.PutUint32(hdr[4:], walVersion)
	binary.BigEndian.PutUint32(hdr[8:], uint32(pageSize))
	copy(hdr[16:24], frame[8:16]) // the salts
	// Sums after magic and version, then after page size and checkpoint
	// sequence (from the salts back), which fixes the sequence.
	a0, a1 := walChecksum(bo, 0, 0, hdr[:8])
	b0, b1 := walUnsum(bo, h0, h1, hdr[16:24])
	if b0 != a0+bo.Uint32(hdr[8:])+a1 {
		return nil, false
	}
	bo.PutUint32(hdr[12:], b1-a1-b0)
	s0, s1 := walChecksum(bo, 0, 0, hdr[:24])
	if s0 != h0 || s1 != h1 {
		return nil, false
	}
	binary.BigEndian.PutUint32(hdr[24:], s0)
	binary.BigEndian.PutUint32(hdr[28:], s1)
	return hdr, true
}

// prepareWAL looks at the WAL of the corrupt file at path once, before the
// salvage opens it (SQLite would drop a WAL it does not recognise): a
// damaged header is mended where the first frame allows
// (repairWALHeader); otherwise what the WAL held is lost, its bytes
// counted, and the count of lost events only a lower bound.
func (s *salvager) prepareWAL(path string) {
	fi, err := os.Stat(path + "-wal")
	if err != nil || !walGarbage(path+"-wal") {
		return
	}
	sizes := []int{4096, 1024, 2048, 8192, 16384, 32768, 65536, 512}
	if b, err := readHead(path, sqliteHeaderSize); err == nil {
		ps := int(binary.BigEndian.Uint16(b[16:]))
		if ps == 1 {
			ps = 65536
		}
		sizes = append([]int{ps}, sizes...)
	}
	if repairWALHeader(path+"-wal", sizes) == nil {
		return
	}
	s.st.LostBytes += fi.Size()
	s.st.Inexact = true
}

// readHead reads the first n bytes of the file at path.
func readHead(path string, n int) ([]byte, error) {
	f, err := openRegular(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	_, err = io.ReadFull(f, b)
	return b, err
}
