package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/heygen-grpc/heygen-grpc/server"
)

// runTokenCommand handles `heygen-grpc new-token NAME` and
// `heygen-grpc hash-token` (token on standard input, never as an argument:
// arguments show in `ps` and shell history). handled is false for any
// other arguments.
func runTokenCommand(args []string, stdin io.Reader, stdout io.Writer) (handled bool, err error) {
	if len(args) == 0 {
		return false, nil
	}
	switch args[0] {
	case "new-token":
		if len(args) != 2 {
			return true, &configError{msg: "usage: heygen-grpc new-token CALLER-NAME"}
		}
		name := args[1]
		if !server.ValidCallerName(name) {
			return true, configErrorf("invalid caller name %q: use letters, digits, '.', '_' or '-' (at most 64)", name)
		}
		token, hash, err := server.NewToken()
		if err != nil {
			return true, err
		}
		fmt.Fprintf(stdout, "# Give this token to %s (shown once; the gateway stores only its hash):\n%s\n", name, token)
		fmt.Fprintf(stdout, "# Add this line to the callers file (-callers-file):\n%s: %s\n", name, hash)
		return true, nil
	case "hash-token":
		if len(args) != 1 {
			return true, &configError{msg: "usage: heygen-grpc hash-token < token-file   (the token is read from standard input)"}
		}
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			return true, fmt.Errorf("read token: %w", err)
		}
		token := strings.TrimSpace(line)
		if token == "" {
			return true, &configError{msg: "hash-token: no token on standard input"}
		}
		fmt.Fprintln(stdout, server.HashToken(token))
		return true, nil
	}
	return false, nil
}
