package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAuthSecret(t *testing.T) {
	const secret = "a secret of at least thirty-two bytes\n"
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // the secret, or an error's text
		err  bool
	}{
		{"open", nil, nil, "", false},
		{"flag", []string{"--auth-secret-file", file}, nil, secret, false},
		{"file from the environment", nil, map[string]string{"XROOMS_AUTH_SECRET_FILE": file}, secret, false},
		{"secret from the environment", nil, map[string]string{"XROOMS_AUTH_SECRET": strings.TrimSpace(secret)}, strings.TrimSpace(secret), false},
		{"both", []string{"--auth-secret-file", file}, map[string]string{"XROOMS_AUTH_SECRET": secret}, "not both", true},
		{"short file", []string{"--auth-secret-file", short}, nil, "at least 32 bytes", true},
		{"short variable", nil, map[string]string{"XROOMS_AUTH_SECRET": "short"}, "XROOMS_AUTH_SECRET: the auth secret must be at least 32 bytes", true},
		{"missing file", []string{"--auth-secret-file", file + ".missing"}, nil, "no such file", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parse(append([]string{"--room", "lobby"}, tt.args...), env(tt.env), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := readAuthSecret(o, env(tt.env))
			switch {
			case tt.err && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %q, %v; want an error saying %s", got, err, tt.want)
			case !tt.err && (err != nil || string(got) != tt.want):
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			case err != nil && strings.Contains(err.Error(), strings.TrimSpace(secret)):
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
	var help bytes.Buffer
	parse([]string{"--help"}, env(nil), &help)
	for _, want := range []string{"--auth-secret-file", "XROOMS_AUTH_SECRET_FILE", "XROOMS_AUTH_SECRET itself"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("--help lacks %s", want)
		}
	}
}
