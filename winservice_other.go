//go:build !windows

package main

import (
	"context"
	"errors"
	"io"
)

// underServiceManager reports false: only Windows has a Service Control
// Manager.
func underServiceManager() bool { return false }

func runAsService(context.Context, func(context.Context) error) error {
	return errors.ErrUnsupported
}

func installWindowsService(string, string, io.Writer) error {
	return errors.New("a Windows service is installed on Windows")
}

func uninstallWindowsService() (bool, error) {
	return false, errors.New("a Windows service is uninstalled on Windows")
}
