//go:build race

package tp

// raceEnabled: the race detector slows the float loops 5-10x, so the
// heaviest tests run on smaller inputs.
const raceEnabled = true
