//go:build e2e

package e2e_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// grpcurl runs the pinned grpcurl against srv (plain text) and returns its
// result; request, if set, is sent as -d.
func grpcurl(t *testing.T, srv *server, request string, args ...string) result {
	t.Helper()
	all := []string{"-plaintext"}
	if request != "" {
		all = append(all, "-d", request)
	}
	cmd := newCommand(t, tool(t, "grpcurl"), append(append(all, srv.addr), args...)...)
	return output(t, cmd)
}

// TestBehaviour checks what the server does, independently of what the
// README happens to show: reflection lists every service, a listed avatar
// can be fetched by id, path-like ids are refused, health is SERVING, and
// the server logs its address.
func TestBehaviour(t *testing.T) {
	tool(t, "grpcurl")
	srv := startServer(t)

	t.Run("the serving log line has the address", func(t *testing.T) {
		if _, ok := srv.findLog(func(r logRecord) bool {
			return r.Msg == "serving heygen.v1.AvatarsService" && strings.HasPrefix(r.Addr, "127.0.0.1:") && r.Addr != "127.0.0.1:0"
		}); !ok {
			t.Errorf(`no JSON log line msg="serving heygen.v1.AvatarsService" with the bound address (127.0.0.1:<port>); server log:%s`, "\n"+srv.logTail())
		}
	})

	t.Run("reflection lists every service", func(t *testing.T) {
		res := grpcurl(t, srv, "", "list")
		if res.code != 0 {
			t.Fatalf("grpcurl list: exit code %d:\n%s", res.code, res.out)
		}
		services := strings.Fields(res.out)
		for _, want := range []string{"heygen.v1.AvatarsService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} {
			if !slices.Contains(services, want) {
				t.Errorf("grpcurl list does not show %s:\n%s", want, res.out)
			}
		}
	})

	t.Run("ListAvatars then GetAvatar", func(t *testing.T) {
		res := grpcurl(t, srv, `{"page_size": 3}`, "heygen.v1.AvatarsService/ListAvatars")
		var list struct {
			Avatars []struct {
				ID string `json:"id"`
			} `json:"avatars"`
		}
		if err := json.Unmarshal([]byte(res.out), &list); res.code != 0 || err != nil {
			t.Fatalf("ListAvatars page_size=3: exit code %d, %v:\n%s", res.code, err, res.out)
		}
		if n := len(list.Avatars); n < 1 || n > 3 || list.Avatars[0].ID == "" {
			t.Fatalf("ListAvatars page_size=3 returned %d avatars (want 1 to 3, with ids):\n%s", n, res.out)
		}
		id := list.Avatars[0].ID
		req, _ := json.Marshal(map[string]string{"avatar_id": id})
		res = grpcurl(t, srv, string(req), "heygen.v1.AvatarsService/GetAvatar")
		var get struct {
			Avatar struct {
				ID string `json:"id"`
			} `json:"avatar"`
		}
		if err := json.Unmarshal([]byte(res.out), &get); res.code != 0 || err != nil || get.Avatar.ID != id {
			t.Errorf("GetAvatar %s did not return that avatar (exit code %d, %v):\n%s", id, res.code, err, res.out)
		}
	})

	t.Run("a path-like id is InvalidArgument", func(t *testing.T) {
		res := grpcurl(t, srv, `{"avatar_id": "../../v3/users/me"}`, "heygen.v1.AvatarsService/GetAvatar")
		// grpcurl exits 64 + the status code: InvalidArgument is 3.
		if res.code != 64+3 || !strings.Contains(res.out, "Code: InvalidArgument") {
			t.Errorf("GetAvatar ../../v3/users/me: exit code %d (want 67, InvalidArgument):\n%s", res.code, res.out)
		}
	})

	for _, service := range []string{"", "heygen.v1.AvatarsService"} {
		t.Run(fmt.Sprintf("grpc-health-probe -service=%q", service), func(t *testing.T) {
			res := output(t, newCommand(t, tool(t, "grpc-health-probe"), "-addr="+srv.addr, "-service="+service))
			if res.code != 0 || strings.TrimSpace(res.out) != "status: SERVING" {
				t.Errorf("exit code %d, want 0 and status: SERVING:\n%s", res.code, res.out)
			}
		})
	}
}

// TestConfigErrors checks that a bad configuration stops the binary at
// once with exit code 2 and one line on stderr saying what is wrong.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		mention string // the line must contain it
	}{
		{"no HEYGEN_API_KEY and no -demo", nil, "HEYGEN_API_KEY"},
		{"-addr with garbage", []string{"-demo", "-addr", "not an address"}, `-addr "not an address"`},
		{"unknown flag", []string{"-demo", "-no-such-flag"}, "-no-such-flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := newCommand(t, serverBin, tc.args...)
			cmd.Dir = t.TempDir() // no .env
			cmd.Env = hermeticEnv()
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			err := cmd.Run()
			var exitErr *exec.ExitError
			code := 0
			if errors.As(err, &exitErr) {
				code = exitErr.ExitCode()
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			switch {
			case code != 2:
				t.Errorf("heygen-grpc %q: exit code %d (%v), want 2; stderr:\n%s", tc.args, code, err, stderr.String())
			case len(lines) != 1 || lines[0] == "":
				t.Errorf("heygen-grpc %q: %d stderr lines, want exactly 1:\n%s", tc.args, len(lines), stderr.String())
			case !strings.Contains(lines[0], tc.mention):
				t.Errorf("heygen-grpc %q: stderr %q does not mention %q", tc.args, lines[0], tc.mention)
			case stdout.Len() != 0:
				t.Errorf("heygen-grpc %q: printed to stdout: %q", tc.args, stdout.String())
			case time.Since(start) > 10*time.Second:
				t.Errorf("heygen-grpc %q: took %s to fail", tc.args, time.Since(start))
			}
		})
	}
}

// TestShutdown checks that SIGTERM stops the server cleanly: exit code 0
// and "shutting down" then "stopped" in its log.
func TestShutdown(t *testing.T) {
	srv := startServer(t)
	if code := srv.stop(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	var msgs []string
	for _, r := range srv.logs() {
		msgs = append(msgs, r.Msg)
	}
	down := slices.IndexFunc(msgs, func(m string) bool { return strings.HasPrefix(m, "shutting down") })
	stopped := slices.Index(msgs, "stopped")
	if down < 0 || stopped < down {
		t.Errorf(`the log does not have "shutting down..." followed by "stopped"; its messages: %q`, msgs)
	}
}
