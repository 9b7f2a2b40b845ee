//go:build race

package catalogue

// raceDetector: the race detector's instrumentation allocates, so
// allocation bounds are checked only without it (scripts/test.sh runs
// them so).
const raceDetector = true
