// Command floor is the least a hook's enqueue can cost: a fresh Go process,
// linked with the same SQLite driver as difflore, that checks one JSON
// payload and inserts one row into an existing WAL outbox with the same
// durability (synchronous=NORMAL). bench/run.sh times 'difflore enqueue'
// against it.
//
// Usage: floor DB JSON
package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"
)

const insertSQL = `INSERT INTO events (id, kind, payload, created_at, available_at)
VALUES (?1, 'event', ?2, ?3, ?3)`

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "floor: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: floor DB JSON")
	}
	payload := []byte(args[1])
	if !json.Valid(payload) {
		return fmt.Errorf("payload is not valid JSON")
	}
	var b [16]byte
	rand.Read(b[:])
	conn, err := sqlite.OpenConn(args[0], sqlite.OpenReadWrite)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetBusyTimeout(2 * time.Second)
	if err := sqlitex.ExecuteTransient(conn, "PRAGMA synchronous = NORMAL", nil); err != nil {
		return err
	}
	now := time.Now().UnixMilli()
	return sqlitex.ExecuteTransient(conn, insertSQL, &sqlitex.ExecOptions{
		Args: []any{hex.EncodeToString(b[:]), payload, now},
	})
}
