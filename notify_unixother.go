//go:build unix && !linux

package main

import "time"

// pipeCheckEvery is how often an idle daemon looks whether its wake pipe
// is still there: these systems have no watch on the data home here.
const pipeCheckEvery = time.Minute

// watchHome is -1: no watch, the pipe is looked at every pipeCheckEvery.
func watchHome(string) int { return -1 }

func drainWatch(int) {}
