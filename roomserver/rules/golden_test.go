package rules_test

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/xrooms/xrooms/roomserver/batch"
	"github.com/xrooms/xrooms/roomserver/entity"
	"github.com/xrooms/xrooms/roomserver/event"
	"github.com/xrooms/xrooms/roomserver/rules"
)

var update = flag.Bool("update", false, "rewrite the expected output in testdata/*.txt")

// A scenario file is a list of blocks, in the style of etcd-io/raft's testdata:
//
//	# comments, kept on -update
//	command
//	input lines
//	----
//	expected output lines
//	(blank line)
//
// Commands:
//
//	state   input: one JSON object of entities; starts a new room with it. No output.
//	events  input: one JSON room event per line, run through rules.Builtin into the room's
//	        batcher. Output: each event's mutations, "no rule", or its error.
//	flush   Output: the diff (creates/updates/deletes, one entity per line) and then the
//	        room's state after it.
//
// Besides comparing output, the runner checks at each flush that the diff applied the client's
// way equals the mutations applied one by one, so a scenario cannot bless a wrong diff.
type block struct {
	comments []string
	command  string
	input    []string
	output   []string
	line     int
}

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenarios in testdata")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			blocks := parseScenario(t, file)
			r := newRunner()
			for i := range blocks {
				b := &blocks[i]
				got := r.run(t, file, b)
				if *update {
					b.output = got
					continue
				}
				if !slices.Equal(got, b.output) {
					t.Errorf("%s:%d: %s: got\n%s\nwant\n%s", file, b.line, b.command,
						strings.Join(got, "\n"), strings.Join(b.output, "\n"))
				}
			}
			if *update {
				writeScenario(t, file, blocks)
			}
		})
	}
}

func parseScenario(t *testing.T, file string) []block {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		blocks []block
		cur    *block
		state  = "between" // between, input, output
		n      int
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		n++
		line := sc.Text()
		switch state {
		case "between":
			switch {
			case strings.TrimSpace(line) == "":
				if cur != nil && cur.command == "" {
					cur.comments = append(cur.comments, "") // keeps a file's header apart
				}
			case strings.HasPrefix(line, "#"):
				if cur == nil || cur.command != "" {
					blocks = append(blocks, block{})
					cur = &blocks[len(blocks)-1]
				}
				cur.comments = append(cur.comments, line)
			default:
				if cur == nil || cur.command != "" {
					blocks = append(blocks, block{})
					cur = &blocks[len(blocks)-1]
				}
				cur.command, cur.line, state = strings.TrimSpace(line), n, "input"
			}
		case "input":
			if line == "----" {
				state = "output"
				continue
			}
			cur.input = append(cur.input, line)
		case "output":
			if strings.TrimSpace(line) == "" {
				state = "between"
				continue
			}
			cur.output = append(cur.output, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if state == "input" {
		t.Fatalf("%s:%d: block %q has no ----", file, cur.line, cur.command)
	}
	if cur != nil && cur.command == "" {
		t.Fatalf("%s: comments after the last block", file)
	}
	return blocks
}

func writeScenario(t *testing.T, file string, blocks []block) {
	t.Helper()
	var sb strings.Builder
	for i, b := range blocks {
		if i > 0 {
			sb.WriteString("\n")
		}
		for _, l := range b.comments {
			sb.WriteString(l + "\n")
		}
		sb.WriteString(b.command + "\n")
		for _, l := range b.input {
			sb.WriteString(l + "\n")
		}
		sb.WriteString("----\n")
		for _, l := range b.output {
			sb.WriteString(l + "\n")
		}
	}
	if err := os.WriteFile(file, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runner is one room: the rules, its batcher, and the model the batcher must agree with.
type runner struct {
	table rules.Table
	b     *batch.Batcher
	// flushed is the state as of the last flush, model the state after every mutation so far.
	flushed, model entity.State
}

func newRunner() *runner {
	r := &runner{table: rules.Builtin()}
	r.reset(entity.State{})
	return r
}

func (r *runner) reset(s entity.State) {
	r.flushed, r.model = s.Clone(), s.Clone()
	r.b = batch.New(s.Clone())
}

func (r *runner) run(t *testing.T, file string, b *block) []string {
	t.Helper()
	where := fmt.Sprintf("%s:%d", file, b.line)
	switch b.command {
	case "state":
		var s entity.State
		if err := json.Unmarshal([]byte(strings.Join(b.input, "\n")), &s); err != nil {
			t.Fatalf("%s: state: %v", where, err)
		}
		if s == nil {
			s = entity.State{}
		}
		r.reset(s)
		return nil
	case "events":
		var out []string
		for i, line := range b.input {
			var ev event.Event
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("%s: event %d: %v", where, i+1, err)
			}
			muts, err := r.table.Apply(ev, r.b.Lookup)
			switch {
			case err != nil:
				if muts != nil {
					t.Errorf("%s: %s: error %q came with mutations %v", where, ev.Name, err, muts)
				}
				out = append(out, "error: "+err.Error())
			case muts == nil:
				out = append(out, ev.Name+": no rule")
			}
			for _, m := range muts {
				line := fmt.Sprintf("%s: %s %s", ev.Name, m.Op, m.ID)
				if m.Op != entity.Delete {
					line += " " + encode(t, m.Components)
				}
				out = append(out, line)
				r.model.Apply(m)
				r.b.Add(m)
			}
		}
		return out
	case "flush":
		d := r.b.Flush()
		got := r.flushed.Clone()
		got.ApplyDiff(d)
		if !got.Equal(r.model) {
			t.Fatalf("%s: diff %s applied gives %s; the events one by one give %s",
				where, encode(t, d), encode(t, got), encode(t, r.model))
		}
		if !r.b.State().Equal(r.model) {
			t.Fatalf("%s: batcher state %s, want %s", where, encode(t, r.b.State()), encode(t, r.model))
		}
		r.flushed = r.model.Clone()
		var out []string
		if d.Empty() {
			out = append(out, "empty diff")
		}
		for _, part := range []struct {
			name string
			m    map[string]entity.Components
		}{{"create", d.Creates}, {"update", d.Updates}, {"delete", d.Deletes}} {
			for _, id := range slices.Sorted(maps.Keys(part.m)) {
				line := part.name + " " + id
				if part.name != "delete" {
					line += " " + encode(t, part.m[id])
				}
				out = append(out, line)
			}
		}
		for _, id := range slices.Sorted(maps.Keys(r.model)) {
			out = append(out, "state "+id+" "+encode(t, r.model[id]))
		}
		return out
	}
	t.Fatalf("%s: unknown command %q", where, b.command)
	return nil
}

func encode(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
