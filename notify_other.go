//go:build !linux

package main

import "errors"

// watchCommits has no implementation here yet: the daemon finds new commits
// by polling PRAGMA data_version every --tick. (kqueue's EVFILT_VNODE on the
// WAL and ReadDirectoryChangesW could serve the same purpose.)
func watchCommits(home) (<-chan struct{}, func(), error) {
	return nil, nil, errors.ErrUnsupported
}
