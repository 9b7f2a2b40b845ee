//go:build race

package server

// raceDetector: under the race detector sync.Pool drops items at random,
// so allocation bounds are checked only without it (scripts/test.sh runs
// them so).
const raceDetector = true
