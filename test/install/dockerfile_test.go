package install

import (
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// No Docker engine runs where these tests run, so they check the Dockerfile the other way:
// they read it, run its build stage's steps on a copy of the build context, and check the
// binaries and the final stage the image would get.

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct{ cmd, args string }

// stage is one FROM ... section.
type stage struct {
	from, name string
	steps      []instruction
}

// dockerfile parses the repository's Dockerfile into its stages.
func dockerfile(t *testing.T) []stage {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var stages []stage
	var line string
	for _, l := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(l)
		if line == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			line += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		line += trimmed
		cmd, args, _ := strings.Cut(line, " ")
		line = ""
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--platform=") })
			st := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %s before the first FROM (global ARGs are not supported by this test)", in.cmd)
		}
		stages[len(stages)-1].steps = append(stages[len(stages)-1].steps, in)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and a final one", len(stages))
	}
	return stages
}

// all returns the arguments of every instruction cmd of the stage.
func (s stage) all(cmd string) []string {
	var out []string
	for _, in := range s.steps {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// last returns the arguments of the stage's last instruction cmd, which is the one in force.
func (s stage) last(cmd string) string {
	all := s.all(cmd)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1]
}

// imageFile is a file of the final image and where the build stage made it.
type imageFile struct{ path, built string }

// finalStage checks the final stage: non-root, no shell needed, the room server as
// entrypoint. It returns the files the final stage copies from the build stage.
func finalStage(t *testing.T, stages []stage) []imageFile {
	t.Helper()
	final := stages[len(stages)-1]
	if !strings.Contains(final.from, "distroless/static") {
		t.Errorf("final stage FROM %s, want a distroless static image: no shell, no libc, the binaries are static", final.from)
	}
	// Numeric, so the kubelet can check runAsNonRoot (it cannot resolve names), and 65532: the
	// user room pods run as (runAsUser, fsGroup).
	if user := final.last("USER"); user != "65532:65532" {
		t.Errorf("final stage USER %q, want 65532:65532", user)
	}
	// Exec form: no shell runs it. Room pods set no command, so this is what they run.
	var entrypoint []string
	if err := json.Unmarshal([]byte(final.last("ENTRYPOINT")), &entrypoint); err != nil || !slices.Equal(entrypoint, []string{"/roomserver"}) {
		t.Errorf("final stage ENTRYPOINT %q, want [\"/roomserver\"] in exec form (%v)", final.last("ENTRYPOINT"), err)
	}
	var files []imageFile
	for _, args := range final.all("COPY") {
		f := strings.Fields(args)
		if len(f) < 3 || f[0] != "--from="+stages[0].name {
			t.Errorf("final stage COPY %s: want only binaries from the build stage", args)
			continue
		}
		srcs, dest := f[1:len(f)-1], f[len(f)-1]
		for _, src := range srcs {
			p := dest
			if strings.HasSuffix(dest, "/") || len(srcs) > 1 {
				p = path.Join(dest, path.Base(src))
			}
			files = append(files, imageFile{path: p, built: src})
		}
	}
	return files
}

// imagePaths returns the paths of the image's files.
func imagePaths(t *testing.T) []string {
	t.Helper()
	var paths []string
	for _, f := range finalStage(t, dockerfile(t)) {
		paths = append(paths, f.path)
	}
	return paths
}

// checkRunsImageBinary checks that a manager container's command is a binary of the image
// other than its entrypoint (the room server).
func checkRunsImageBinary(t *testing.T, c corev1.Container) {
	t.Helper()
	paths := imagePaths(t)
	if len(c.Command) != 1 || c.Command[0] == "/roomserver" || !slices.Contains(paths, c.Command[0]) {
		t.Errorf("manager command %q, want [\"/manager\"]: one of the image's binaries %q, not its room-server entrypoint", c.Command, paths)
	}
}

func TestDockerfile(t *testing.T) {
	stages := dockerfile(t)
	build := stages[0]
	files := finalStage(t, stages)

	t.Run("the build stage uses go.mod's Go version", func(t *testing.T) {
		gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
		image := regexp.MustCompile(`^golang:(\d+\.\d+)\b`).FindStringSubmatch(build.from)
		if goLine == nil || image == nil || image[1] != string(goLine[1]) {
			t.Errorf("build stage FROM %s, go.mod says go %s: keep them on the same Go minor version", build.from, goLine[1])
		}
	})

	if testing.Short() {
		t.Skip("building the binaries as the Dockerfile does takes a while")
	}
	// The build arguments docker sets: IMAGE as `make docker-build IMG=...` passes it, the
	// platform as BuildKit does.
	const image = "registry.example.com/team/xrooms:v9.9.9-test"
	args := map[string]string{"IMAGE": image, "TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH}
	fsRoot := t.TempDir()
	workdir := "/"
	env := os.Environ()
	ignore := dockerignore(t)
	for _, in := range build.steps {
		switch in.cmd {
		case "ARG":
			name, def, _ := strings.Cut(in.args, "=")
			if _, set := args[name]; !set {
				args[name] = def
			}
			env = append(env, name+"="+args[name])
		case "WORKDIR":
			workdir = path.Join(workdir, in.args)
			if err := os.MkdirAll(filepath.Join(fsRoot, workdir), 0o755); err != nil {
				t.Fatal(err)
			}
		case "COPY":
			f := strings.Fields(in.args)
			srcs, dest := f[:len(f)-1], f[len(f)-1]
			toDir := strings.HasSuffix(dest, "/") || len(srcs) > 1
			for _, src := range srcs {
				copyFromContext(t, ignore, src, filepath.Join(fsRoot, path.Join(workdir, dest)), toDir)
			}
		case "RUN":
			cmd := exec.Command("sh", "-c", in.args)
			cmd.Dir = filepath.Join(fsRoot, workdir)
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("RUN %s: %v\n%s", in.args, err, out)
			}
		case "ENV":
			t.Fatalf("ENV in the build stage is not supported by this test; use ARG or set variables in RUN")
		}
	}

	// Where the build stage left each file of the final image.
	built := map[string]string{}
	for _, f := range files {
		built[f.path] = filepath.Join(fsRoot, f.built)
	}
	for _, name := range []string{"/manager", "/roomserver"} {
		bin, ok := built[name]
		if !ok {
			t.Fatalf("the image has no %s (it has %v)", name, files)
		}
		t.Run(name+" is a static, trimmed, CGO-free build", func(t *testing.T) {
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatalf("%s as built by the Dockerfile: %v", name, err)
			}
			defer f.Close()
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("%s is dynamically linked: the distroless static image has no libc", name)
				}
			}
			info, err := buildinfo.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			settings := map[string]string{}
			for _, s := range info.Settings {
				settings[s.Key] = s.Value
			}
			if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
				t.Errorf("%s built with CGO_ENABLED=%q -trimpath=%q, want 0 and true", name, settings["CGO_ENABLED"], settings["-trimpath"])
			}
		})
	}
	t.Run("the manager's default room-server image is the image it was built into", func(t *testing.T) {
		out, _ := exec.Command(built["/manager"], "--help").CombinedOutput()
		if want := fmt.Sprintf("(default %q)", image); !strings.Contains(flagHelp(string(out), "room-server-image"), want) {
			t.Errorf("manager --help for --room-server-image:\n%s\nwant %s: the -X main.image ldflag did not take", flagHelp(string(out), "room-server-image"), want)
		}
	})
	t.Run("the room server runs", func(t *testing.T) {
		out, err := exec.Command(built["/roomserver"], "--help").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Usage: roomserver") {
			t.Errorf("roomserver --help: %v\n%s", err, out)
		}
	})
}

// flagHelp returns the --help text of one flag: its line and the indented ones after it.
func flagHelp(help, name string) string {
	var out []string
	in := false
	for _, l := range strings.Split(help, "\n") {
		switch {
		case strings.HasPrefix(strings.TrimSpace(l), "-"+name+" "):
			in = true
		case in && !strings.HasPrefix(l, "    "):
			in = false
		}
		if in {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// dockerignore reads .dockerignore's patterns. The test supports the patterns docker matches
// with filepath.Match (no ** and no ! exceptions) and fails on others rather than guess.
func dockerignore(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.Contains(l, "**") || strings.HasPrefix(l, "!") {
			t.Fatalf(".dockerignore pattern %q: this test does not support ** or ! patterns; extend dockerignore() in %s", l, "test/install/dockerfile_test.go")
		}
		patterns = append(patterns, path.Clean(strings.TrimPrefix(l, "/")))
	}
	return patterns
}

// ignored reports whether the context path (slash-separated, relative) or one of its parent
// directories matches a .dockerignore pattern, as docker decides.
func ignored(patterns []string, p string) bool {
	for ; p != "." && p != "/"; p = path.Dir(p) {
		for _, pat := range patterns {
			if ok, _ := path.Match(pat, p); ok {
				return true
			}
		}
	}
	return false
}

// copyFromContext does a build-stage COPY of src from the build context (the repository less
// what .dockerignore leaves out) to dest: into it when toDir, else as it.
func copyFromContext(t *testing.T, ignore []string, src, dest string, toDir bool) {
	t.Helper()
	src = path.Clean(src)
	if ignored(ignore, src) {
		t.Fatalf("COPY %s: .dockerignore leaves it out of the build context", src)
	}
	from := filepath.Join(root, filepath.FromSlash(src))
	info, err := os.Stat(from)
	if err != nil {
		t.Fatalf("COPY %s: %v", src, err)
	}
	if !info.IsDir() {
		if toDir {
			dest = filepath.Join(dest, filepath.Base(from))
		}
		copyFile(t, from, dest)
		return
	}
	err = filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if ignored(ignore, filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		inside, _ := filepath.Rel(from, p)
		copyFile(t, p, filepath.Join(dest, inside))
		return nil
	})
	if err != nil {
		t.Fatalf("COPY %s: %v", src, err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
