package main

import (
	"encoding/binary"
	"math"
	"os"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

// seqRange is the seqs (lo, hi] a salvage could not read through the
// table's b-tree.
type seqRange struct {
	Lo int64 `json:"lo"`
	Hi int64 `json:"hi"`
}

// The first byte of a table b-tree's leaf and interior pages.
const (
	tableLeafPage     = 0x0d
	tableInteriorPage = 0x05
)

// scanLeaves reads the file page by page, past the b-tree, and copies the
// rows of every table leaf page whose seq lies in one of the lost ranges:
// a truncated file loses the inner pages of the b-tree (written last)
// and with them the way to leaves that are still whole. Only the events
// table has table pages beyond page 1 (meta is WITHOUT ROWID). Pages on
// the free list are read too: a page that SQLite moved rows out of keeps
// them, and its copy may be the one left whole. But a free page also holds
// rows acknowledged long ago, whose seqs a later event may have taken: a
// row is copied only when the index on id says it is in the table with
// that seq (liveRow); where the index cannot say, it is copied all the
// same (sent again at worst, with its id, for the receiver to
// deduplicate) and the count of what was lost becomes a lower bound. It
// reports how many rows it copied, and records in s.st.MaxKey the largest
// seq that any leaf or inner page in use names: the table held at least
// that many seqs.
func (s *salvager) scanLeaves(path string, pageSize int, lost []seqRange) int64 {
	if len(lost) == 0 || pageSize < 512 {
		return 0
	}
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	pages := fi.Size() / int64(pageSize)
	sc := pageScan{f: f, size: fi.Size(), lost: lost}
	sc.free, sc.complete = freePages(f, pageSize, pages)
	page := make([]byte, pageSize)
	var copied int64
	for pgno := int64(2); pgno <= pages; pgno++ {
		if _, err := f.ReadAt(page, (pgno-1)*int64(pageSize)); err != nil {
			continue
		}
		switch page[0] {
		case tableInteriorPage:
			if !sc.free[pgno] {
				key, gone := interiorKeys(page, pages)
				s.st.MaxKey = max(s.st.MaxKey, key)
				s.st.Gone += gone
			}
		case tableLeafPage:
			copied += s.scanLeaf(&sc, page, pgno)
		}
	}
	return copied
}

// pageScan is what scanLeaves knows of the file it reads.
type pageScan struct {
	f        *os.File
	size     int64
	lost     []seqRange
	free     map[int64]bool
	complete bool // free lists every free page
}

// in reports whether seq lies in one of the lost ranges.
func (sc *pageScan) in(seq int64) bool {
	for _, r := range sc.lost {
		if seq > r.Lo && seq <= r.Hi {
			return true
		}
	}
	return false
}

// scanLeaf copies the live rows of table leaf page pgno whose seqs lie in
// the lost ranges (scanLeaves), and reports how many it copied.
func (s *salvager) scanLeaf(sc *pageScan, page []byte, pgno int64) (copied int64) {
	cells := int(binary.BigEndian.Uint16(page[3:]))
	for i := range cells {
		at := 8 + 2*i
		if at+2 > len(page) {
			break
		}
		seq, rec, ok := leafCell(sc.f, page, int(binary.BigEndian.Uint16(page[at:])), sc.size)
		if !ok {
			continue
		}
		if !sc.free[pgno] {
			s.st.MaxKey = max(s.st.MaxKey, seq)
		}
		if !sc.in(seq) {
			continue
		}
		cols, ok := decodeRecord(rec)
		if !ok || len(cols) < 2 {
			continue
		}
		id, _ := cols[1].(string)
		// A page in use, when the whole free list was read, is a page of
		// the table: its rows are live.
		live, known := true, sc.complete && !sc.free[pgno]
		if !known {
			live, known = s.liveRow(id, seq)
		}
		if known && !live {
			continue
		}
		if s.copyScanned(cols) {
			// Noted for the other sinks' progress; a row not noted only
			// goes to them once more (salvagesinks.go).
			_ = s.noteSeq(seq)
			copied++
			s.st.Unsure = s.st.Unsure || !known
		}
	}
	return copied
}

// salvageLiveSQL finds the seq of an event by its id through the index
// on id alone, which a damaged table leaves whole more often than not.
const salvageLiveSQL = `SELECT seq FROM events INDEXED BY sqlite_autoindex_events_1 WHERE id = :id`

// liveRow reports whether the old file's index on id lists id with seq
// (live), and whether it could tell (known).
func (s *salvager) liveRow(id string, seq int64) (live, known bool) {
	if s.from == nil {
		return false, false
	}
	found := int64(-1)
	err := sqlitex.Execute(s.from, salvageLiveSQL, &sqlitex.ExecOptions{
		Named:      map[string]any{":id": id},
		ResultFunc: func(stmt *sqlite.Stmt) error { found = stmt.ColumnInt64(0); return nil },
	})
	if err != nil {
		return false, false
	}
	return found == seq, true
}

// interiorKeys reads a table interior page: the largest key it names,
// and how many of its children lie past the end of the file (pages, a
// truncated file's). A child page of a b-tree in use is never empty, so
// each child gone held at least one row.
func interiorKeys(page []byte, pages int64) (maxKey, gone int64) {
	child := func(pgno uint32) {
		if int64(pgno) > pages {
			gone++
		}
	}
	cells := int(binary.BigEndian.Uint16(page[3:]))
	for i := range cells {
		at := 12 + 2*i
		if at+2 > len(page) {
			break
		}
		off := int(binary.BigEndian.Uint16(page[at:]))
		if off < 12 || off+4 >= len(page) {
			continue
		}
		child(binary.BigEndian.Uint32(page[off:]))
		if key, n := sqliteVarint(page[off+4:]); n > 0 {
			maxKey = max(maxKey, key)
		}
	}
	child(binary.BigEndian.Uint32(page[8:]))
	return maxKey, gone
}

// freePages reads the free list that the file's header starts (its first
// trunk page at byte 32): the trunk pages and the leaves they list. What
// cannot be read of it is left out, and every loop is bounded by the
// file's pages. complete says that it found as many free pages as the
// header counts (at byte 36).
func freePages(f *os.File, pageSize int, pages int64) (free map[int64]bool, complete bool) {
	free = map[int64]bool{}
	hdr := make([]byte, 8)
	if _, err := f.ReadAt(hdr, 32); err != nil {
		return free, false
	}
	defer func() { complete = int64(len(free)) == int64(binary.BigEndian.Uint32(hdr[4:])) }()
	page := make([]byte, pageSize)
	for trunk := int64(binary.BigEndian.Uint32(hdr)); trunk >= 2 && trunk <= pages && !free[trunk]; {
		if _, err := f.ReadAt(page, (trunk-1)*int64(pageSize)); err != nil {
			break
		}
		// A trunk that lists more leaves than it can hold is damaged:
		// what it lists would take pages in use for free ones.
		n := int(binary.BigEndian.Uint32(page[4:]))
		if n < 0 || n > pageSize/4-2 {
			break
		}
		free[trunk] = true
		for i := range n {
			if leaf := int64(binary.BigEndian.Uint32(page[8+4*i:])); leaf >= 2 && leaf <= pages {
				free[leaf] = true
			}
		}
		trunk = int64(binary.BigEndian.Uint32(page))
	}
	return free, false
}

// leafCell reads the cell at off of a table leaf page: its rowid and its
// record, following overflow pages in f. ok is false for a cell that does
// not parse.
func leafCell(f *os.File, page []byte, off int, fileSize int64) (rowid int64, rec []byte, ok bool) {
	u := len(page)
	if off < 8 || off >= u {
		return 0, nil, false
	}
	size, n := sqliteVarint(page[off:])
	if n == 0 || size < 0 || size > 1<<30 {
		return 0, nil, false
	}
	off += n
	rowid, n = sqliteVarint(page[off:])
	if n == 0 {
		return 0, nil, false
	}
	off += n
	local := int(size)
	if local > u-35 {
		m := (u-12)*32/255 - 23
		k := m + (int(size)-m)%(u-4)
		local = m
		if k <= u-35 {
			local = k
		}
	}
	if off+local > u {
		return 0, nil, false
	}
	rec = append([]byte(nil), page[off:off+local]...)
	if local == int(size) {
		return rowid, rec, true
	}
	if off+local+4 > u {
		return 0, nil, false
	}
	next := int64(binary.BigEndian.Uint32(page[off+local:]))
	buf := make([]byte, u)
	for len(rec) < int(size) {
		if next < 2 || next > fileSize/int64(u) {
			return 0, nil, false
		}
		if _, err := f.ReadAt(buf, (next-1)*int64(u)); err != nil {
			return 0, nil, false
		}
		take := min(u-4, int(size)-len(rec))
		rec = append(rec, buf[4:4+take]...)
		next = int64(binary.BigEndian.Uint32(buf))
	}
	return rowid, rec, true
}

// sqliteVarint decodes one of SQLite's big-endian varints (1 to 9 bytes),
// and returns 0 bytes read when b ends first.
func sqliteVarint(b []byte) (int64, int) {
	var v uint64
	for i := 0; i < 9; i++ {
		if i >= len(b) {
			return 0, 0
		}
		if i == 8 {
			return int64(v<<8 | uint64(b[i])), 9
		}
		v = v<<7 | uint64(b[i]&0x7f)
		if b[i] < 0x80 {
			return int64(v), i + 1
		}
	}
	return 0, 0
}

// decodeRecord decodes a record in SQLite's format into its column values:
// nil, int64, float64, []byte for a blob, string for text.
func decodeRecord(rec []byte) ([]any, bool) {
	hdr, n := sqliteVarint(rec)
	if n == 0 || hdr < int64(n) || hdr > int64(len(rec)) {
		return nil, false
	}
	var types []int64
	for at := n; at < int(hdr); {
		t, m := sqliteVarint(rec[at:int(hdr)])
		if m == 0 || t < 0 {
			return nil, false
		}
		types, at = append(types, t), at+m
	}
	body := rec[hdr:]
	cols := make([]any, 0, len(types))
	for _, t := range types {
		var size int
		switch {
		case t == 0 || t == 8 || t == 9:
			size = 0
		case t >= 1 && t <= 4:
			size = int(t)
		case t == 5:
			size = 6
		case t == 6 || t == 7:
			size = 8
		case t >= 12:
			size = int((t - 12) / 2)
		default:
			return nil, false
		}
		if size > len(body) {
			return nil, false
		}
		v := body[:size]
		body = body[size:]
		switch {
		case t == 0:
			cols = append(cols, nil)
		case t == 8 || t == 9:
			cols = append(cols, t-8)
		case t == 7:
			cols = append(cols, math.Float64frombits(binary.BigEndian.Uint64(v)))
		case t <= 6:
			var x int64
			for _, c := range v {
				x = x<<8 | int64(c)
			}
			shift := 64 - 8*uint(size) // sign-extend
			cols = append(cols, x<<shift>>shift)
		case t%2 == 0:
			cols = append(cols, append([]byte(nil), v...))
		default:
			cols = append(cols, string(v))
		}
	}
	return cols, true
}

// copyScanned copies one row that scanLeaves found into the fresh outbox:
// seq (stored as NULL, the rowid being the key), id, kind, payload,
// created_at, state, attempts, available_at, claim, last_error and, from
// version 2, raw, from version 4, sink, and from version 5, traceparent (a
// row written before a column was added has none). A row of any other
// shape is not an event, and skipped.
func (s *salvager) copyScanned(cols []any) bool {
	if len(cols) < 10 || len(cols) > 13 || cols[0] != nil {
		return false
	}
	id, ok1 := cols[1].(string)
	kind, ok2 := cols[2].(string)
	payload, ok3 := cols[3].([]byte)
	created, ok4 := cols[4].(int64)
	state, ok5 := cols[5].(int64)
	attempts, ok6 := cols[6].(int64)
	available, ok7 := cols[7].(int64)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) {
		return false
	}
	raw, tp := int64(0), ""
	if len(cols) >= 11 {
		raw, _ = cols[10].(int64)
	}
	var sink any
	if len(cols) >= 12 {
		sink = cols[11]
	}
	if len(cols) == 13 {
		tp, _ = cols[12].(string)
	}
	ins, err := s.to.conn.Prepare(salvageInsertSQL)
	if err != nil {
		return false
	}
	ins.SetText(":id", id)
	ins.SetText(":kind", kind)
	ins.SetBytes(":payload", payload)
	ins.SetInt64(":created", created)
	ins.SetInt64(":state", state)
	ins.SetInt64(":attempts", attempts)
	ins.SetInt64(":available", available)
	for param, v := range map[string]any{":claim": cols[8], ":error": cols[9], ":sink": sink} {
		if t, ok := v.(string); ok {
			ins.SetText(param, t)
		} else {
			ins.SetNull(param)
		}
	}
	ins.SetInt64(":raw", raw)
	setTraceparent(ins, tp)
	_, err = ins.Step()
	if rerr := ins.Reset(); err == nil {
		err = rerr
	}
	return err == nil && s.to.conn.Changes() > 0
}
