//go:build !race

package catalogue

// raceDetector: see race_on_test.go.
const raceDetector = false
