package main

import (
	"bytes"
	"errors"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestREADMEConfigurationTableMatchesTheFlags: every flag `heygen-grpc -h`
// prints is in the README's configuration table with its environment
// variable, and the table names no flag the binary lacks.
func TestREADMEConfigurationTableMatchesTheFlags(t *testing.T) {
	var usage bytes.Buffer
	if _, err := parseConfig([]string{"-h"}, func(string) string { return "" }, &usage); !errors.Is(err, errHelp) {
		t.Fatalf("-h: %v", err)
	}
	flagLine := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`)
	envOf := regexp.MustCompile(`\(env ([A-Z0-9_]+)\)`)
	binary := map[string]string{}
	lines := strings.Split(usage.String(), "\n")
	for i, line := range lines {
		m := flagLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		// The help text is on this line or the next.
		text := line
		if i+1 < len(lines) {
			text += lines[i+1]
		}
		env := ""
		if e := envOf.FindStringSubmatch(text); e != nil {
			env = e[1]
		}
		binary[m[1]] = env
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| (`-[^|]+)\\| ([^|]*)\\|")
	name := regexp.MustCompile("`-([a-z0-9-]+)`")
	envName := regexp.MustCompile("`([A-Z0-9_]+)`")
	documented := map[string][]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		flags := name.FindAllStringSubmatch(m[1], -1)
		envs := envName.FindAllStringSubmatch(m[2], -1)
		for i, f := range flags {
			var e []string
			if i < len(envs) {
				e = append(e, envs[i][1])
			}
			documented[f[1]] = e
		}
	}
	if len(binary) < 20 || len(documented) < 20 {
		t.Fatalf("parsed %d flags from -h and %d from the README: the parsers are broken", len(binary), len(documented))
	}
	for flag, env := range binary {
		envs, ok := documented[flag]
		switch {
		case !ok:
			t.Errorf("-%s (env %s) is not in the README's configuration table", flag, env)
		case env != "" && !slices.Contains(envs, env):
			t.Errorf("-%s: the README names environment %v, the binary %s", flag, envs, env)
		}
	}
	for flag := range documented {
		if _, ok := binary[flag]; !ok {
			t.Errorf("the README documents -%s, which the binary does not have", flag)
		}
	}
}
