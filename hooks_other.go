//go:build !windows

package main

import "errors"

// shortPathName is only needed on Windows, where it gives a path without
// spaces; see hooks_windows.go.
func shortPathName(string) (string, error) { return "", errors.ErrUnsupported }
