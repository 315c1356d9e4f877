package main

import (
	"encoding/json"
	"time"
)

// gapPayload is a gap event's payload: how many events were lost, their
// bytes and kinds where known, the span of their creation times where
// known, and why.
type gapPayload struct {
	Evicted        int64            `json:"evicted"`
	Bytes          int64            `json:"bytes"`
	Kinds          map[string]int64 `json:"kinds"`
	FirstCreatedAt *time.Time       `json:"first_created_at"`
	LastCreatedAt  *time.Time       `json:"last_created_at"`
	Reason         string           `json:"reason"`
	// Exact is false where only a lower bound of the events lost can be
	// known (a damaged file): Evicted is then at most what was lost.
	Exact bool `json:"exact"`
}

// corruptGap is the payload of the gap that a salvage of a corrupt outbox
// reports: lost events, and as dates the creation times of the readable
// events on either side of what could not be read (nil where there was
// none), and whether lost is exact or only a lower bound. The kinds of
// events that could not be read are unknown: kinds stays empty.
func corruptGap(lost, bytes int64, exact bool, first, last time.Time) []byte {
	g := gapPayload{Evicted: lost, Bytes: bytes, Kinds: map[string]int64{}, Reason: "corrupt", Exact: exact}
	if !first.IsZero() {
		f := first.UTC()
		g.FirstCreatedAt = &f
	}
	if !last.IsZero() {
		l := last.UTC()
		g.LastCreatedAt = &l
	}
	b, _ := json.Marshal(g) // A struct of plain fields cannot fail.
	return b
}
