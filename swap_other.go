//go:build !linux

package main

import "errors"

// swapFiles and renameNoReplace are, on Linux, a rename that gives back the
// file it replaced and one that replaces nothing (swap_linux.go). Other
// systems have no such call that every version supports, and the caller
// falls back to a plain rename.
func swapFiles(a, b string) error { return errors.ErrUnsupported }

func renameNoReplace(a, b string) error { return errors.ErrUnsupported }
