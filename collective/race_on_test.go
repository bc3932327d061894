//go:build race

package collective

// raceEnabled shrinks the numeric sweeps under the race detector, which
// checks the concurrency of the same code paths, not the numerics.
const raceEnabled = true
