package compact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/xrooms/xrooms/roomserver/entity"
)

// same is reflect.DeepEqual with numbers compared bit for bit (so -0 differs from 0).
func same(a, b any) bool {
	switch a := a.(type) {
	case float64:
		b, ok := b.(float64)
		return ok && math.Float64bits(a) == math.Float64bits(b)
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !same(a[i], b[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			w, ok := b[k]
			if !ok || !same(v, w) {
				return false
			}
		}
		return true
	}
	return a == b
}

// checkRoundTrip asserts that the compact encoding decodes to what the JSON encoding does.
func checkRoundTrip(t testing.TB, compact, js []byte) {
	t.Helper()
	got, err := Decode(compact)
	if err != nil {
		t.Fatalf("%v\ncompact % x", err, compact)
	}
	want, err := parseJSON(js)
	if err != nil {
		t.Fatalf("json: %v\n%s", err, js)
	}
	if !same(got, want) {
		t.Fatalf("round trip differs\njson    %s\ngot     %#v\nwant    %#v\ncompact % x", js, got, want, compact)
	}
}

// parseJSON decodes as JSON.parse does: like encoding/json into any, but numbers out of
// float64 range are ±Inf (JavaScript's Infinity) instead of an error.
func parseJSON(js []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var conv func(v any) any
	conv = func(v any) any {
		switch v := v.(type) {
		case json.Number:
			f, err := strconv.ParseFloat(string(v), 64)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				panic(err)
			}
			return f
		case []any:
			for i := range v {
				v[i] = conv(v[i])
			}
		case map[string]any:
			for k := range v {
				v[k] = conv(v[k])
			}
		}
		return v
	}
	return conv(v), nil
}

// ---- cases

// edgeValues are component values that cover the format's corners.
var edgeValues = []string{
	`null`, `true`, `false`, `0`, `-0`, `-0.0`, `0.0`, `0e5`, `-0e-5`, `1`, `127`, `128`, `-1`, `12`,
	`9007199254740991`, `9007199254740992`, `9007199254740993`, `-9007199254740992`,
	`12345678901234567890`, `-12345678901234567890123`, `1e308`, `-1e308`, `1.7976931348623157e308`,
	`1e400`, `-1e400`, `5e-324`, `4.9e-324`, `2e-324`, `1e-400`, `-1e-400`, `2.2250738585072014e-308`,
	`0.1`, `0.7071`, `-2.75`, `12.25`, `123.456e-5`, `1E+2`, `1.5e3`, `1.50000000000000000000000`,
	`0.000000000000000000001`, `0.0000000000000000000001234`, `0.10000000149011612`, `3.141592653589793`,
	`1.0000000000000002`, `100000000000000000000000`, `1e22`, `1e23`, `123456789012345.678`,
	`""`, `"plain"`, `"é😀 ünïcödé  "`, `"\"\\\/\b\f\n\r\t\u0000\u001f"`, `"\u00e9\u20AC\ud83d\ude00"`,
	`"\ud800"`, `"a\udc00b"`, `"\ud800\ud800\udc00"`, `"x\ud83dé\"\n"`, `"<script>&amp;</script>"`, "\"\u2028\u2029\"",
	`[]`, `{}`, `[[]]`, `[{}]`, `[12.25,1.5,-2.75]`, `[0,0.7071,0,0.7071]`, `[1,2,3]`, `[-0,0]`,
	`[1e400,1]`, `[0.1,1e300]`, `[0.10000000149011612,0.5]`, `[1,0.000000000000000000001]`,
	`[1234567890123,0.000001]`, `[9007199254740992,0.5]`, `[5e-324]`, `[1,"a"]`, `["a",1]`,
	`[1,[2,[3,[]]],{"a":[4.5]}]`, `[true,false,null]`,
	`{"a":1,"b":{"c":[1,2,{"d":null}],"e":"f"}}`, `{"a":1,"a":2}`, `{"b":1,"a":2,"b":3}`,
	`{"2":1,"1":2,"b":3,"a":4}`, `{"__proto__":{"x":1}}`, `{"":""}`, `{"\ud800":1,"k\n":2}`,
	` { "spaced" : [ 1 , 2.5 ] , "t" : true } `, "\t\r\n[1,\n2]\n",
	`{"x":1.5,"y":-2,"z":0.25}`,
}

func edgeDiffs() []entity.Diff {
	comps := entity.Components{}
	for i, v := range edgeValues {
		comps[fmt.Sprintf("c%03d", i)] = json.RawMessage(v)
	}
	many := map[string]any{}
	for i := range 40 {
		many[fmt.Sprintf("key%d", i)] = i
	}
	manyJSON, _ := json.Marshal([]any{many, many})
	d := []entity.Diff{
		entity.NewDiff(),
		{},
		{Creates: map[string]entity.Components{"e": comps}},
		{Updates: map[string]entity.Components{"nil": nil, "empty": {}, "rawempty": {"c": nil, "d": json.RawMessage{}}}},
		{
			Creates: map[string]entity.Components{"load-00001": {"position": json.RawMessage(`[12.25,1.5,-2.75]`)}},
			Updates: map[string]entity.Components{"load-00002": {"seq": json.RawMessage(`12`)}},
			Deletes: map[string]entity.Components{"load-00003": {}, "load-00004": {}, "gone": nil},
		},
		{Updates: map[string]entity.Components{
			"é1": {"a": json.RawMessage(`1`)}, "é2": {"a": json.RawMessage(`2`)}, "😀a": {}, "😀b": {},
			"\xffbad": {"n\xfe<": json.RawMessage(`1`)}, "\xffbad2": {}, "__proto__": {"__proto__": json.RawMessage(`{}`)},
			"": {"": json.RawMessage(`""`)}, "a": {}, "ab": {}, "abc": {}, "b": {}, "1": {}, "0": {},
			"<&>": {"<&>": json.RawMessage(`"<&>"`)},
		}},
		{Creates: map[string]entity.Components{"many": {"v": manyJSON}}},
	}
	names := entity.Components{}
	for i := range 40 {
		names[fmt.Sprintf("comp%02d", i)] = json.RawMessage(strconv.Itoa(i))
	}
	d = append(d, entity.Diff{Creates: map[string]entity.Components{"x": names, "y": names}})
	for _, v := range edgeValues {
		d = append(d, entity.Diff{Updates: map[string]entity.Components{"id": {"v": json.RawMessage(v)}}})
	}
	return d
}

// randomJSON writes a random JSON value; depth bounds nesting.
func randomJSON(r *rand.Rand, b []byte, depth int) []byte {
	ws := func(b []byte) []byte {
		if r.IntN(8) == 0 {
			return append(b, " \t\n\r"[r.IntN(4)])
		}
		return b
	}
	b = ws(b)
	k := r.IntN(10)
	if depth <= 0 && k >= 7 {
		k = r.IntN(7)
	}
	switch k {
	case 0:
		b = append(b, []string{"null", "true", "false"}[r.IntN(3)]...)
	case 1, 2:
		b = randomNumber(r, b)
	case 3:
		b = randomString(r, b)
	case 4, 5, 6: // numeric arrays, the common case
		b = append(b, '[')
		for i := range r.IntN(6) {
			if i > 0 {
				b = append(b, ',')
			}
			b = ws(b)
			if r.IntN(12) == 0 {
				b = randomJSON(r, b, depth-1)
			} else {
				b = randomNumber(r, b)
			}
		}
		b = append(ws(b), ']')
	case 7, 8:
		b = append(b, '[')
		for i := range r.IntN(5) {
			if i > 0 {
				b = append(b, ',')
			}
			b = randomJSON(r, b, depth-1)
		}
		b = append(b, ']')
	default:
		b = append(b, '{')
		for i := range r.IntN(5) {
			if i > 0 {
				b = append(b, ',')
			}
			b = ws(randomString(r, ws(b)))
			b = append(b, ':')
			b = randomJSON(r, b, depth-1)
		}
		b = append(b, '}')
	}
	return ws(b)
}

func randomNumber(r *rand.Rand, b []byte) []byte {
	switch r.IntN(8) {
	case 0:
		return strconv.AppendInt(b, r.Int64N(1<<60)-1<<59, 10)
	case 1:
		return strconv.AppendFloat(b, float64(float32(r.NormFloat64()*100)), 'g', -1, 64)
	case 2:
		f := math.Float64frombits(r.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			f = math.SmallestNonzeroFloat64
		}
		return strconv.AppendFloat(b, f, 'g', -1, 64)
	case 3:
		return strconv.AppendFloat(b, r.NormFloat64()*1000, 'f', r.IntN(8), 64)
	case 4:
		return strconv.AppendInt(b, r.Int64N(300)-20, 10)
	}
	// Random digits, fraction and exponent.
	if r.IntN(3) == 0 {
		b = append(b, '-')
	}
	if r.IntN(3) == 0 {
		b = append(b, '0')
	} else {
		b = append(b, byte('1'+r.IntN(9)))
		for range r.IntN(20) {
			b = append(b, byte('0'+r.IntN(10)))
		}
	}
	if r.IntN(2) == 0 {
		b = append(b, '.')
		for range 1 + r.IntN(25) {
			b = append(b, "0000123456789"[r.IntN(13)])
		}
	}
	if r.IntN(3) == 0 {
		b = append(b, "eE"[r.IntN(2)])
		b = append(b, []string{"", "+", "-"}[r.IntN(3)]...)
		b = strconv.AppendInt(b, int64(r.IntN(340)), 10)
	}
	return b
}

var stringPieces = []string{"a", "xyz", "é", "😀", "€", " ", `\"`, `\\`, `\/`, `\b`, `\n`, `\t`, `\u0000`,
	`\u00e9`, `\ud83d\ude00`, `\ud800`, `\udfff`, "\u2028", "<", "&", `\u003c`, "漢字", "key", "position"}

func randomString(r *rand.Rand, b []byte) []byte {
	b = append(b, '"')
	for range r.IntN(6) {
		b = append(b, stringPieces[r.IntN(len(stringPieces))]...)
	}
	return append(b, '"')
}

func randomDiff(r *rand.Rand) entity.Diff {
	section := func() map[string]entity.Components {
		if r.IntN(10) == 0 {
			return nil
		}
		m := map[string]entity.Components{}
		for range r.IntN(8) {
			id := []string{"load-", "e", "é", "😀", "user:", ""}[r.IntN(6)] + strconv.Itoa(r.IntN(200))
			if r.IntN(10) == 0 {
				m[id] = nil
				continue
			}
			c := entity.Components{}
			for range r.IntN(5) {
				name := []string{"position", "rotation", "seq", "name", "hp", "é", "__proto__", "0"}[r.IntN(8)]
				c[name] = randomJSON(r, nil, 3)
			}
			m[id] = c
		}
		return m
	}
	return entity.Diff{Creates: section(), Updates: section(), Deletes: section()}
}

// ---- tests

func TestEdgeCases(t *testing.T) {
	for i, d := range edgeDiffs() {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			out, err := AppendDiff(nil, d)
			if err != nil {
				t.Fatal(err)
			}
			checkRoundTrip(t, out, d.AppendJSON(nil))
			s := entity.State(d.Creates)
			out, err = AppendState(nil, s)
			if err != nil {
				t.Fatal(err)
			}
			checkRoundTrip(t, out, s.AppendJSON(nil))
		})
	}
}

func TestRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		d := randomDiff(r)
		out, err := AppendDiff(nil, d)
		if err != nil {
			t.Fatalf("%v\n%s", err, d.AppendJSON(nil))
		}
		checkRoundTrip(t, out, d.AppendJSON(nil))
	}
}

func TestDeterministicAndAppends(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		d := randomDiff(r)
		a, _ := AppendDiff(nil, d)
		b, _ := AppendDiff([]byte("prefix"), d)
		if !bytes.Equal(a, b[6:]) || string(b[:6]) != "prefix" {
			t.Fatalf("not deterministic or does not append:\n% x\n% x", a, b)
		}
	}
}

func TestInvalidJSON(t *testing.T) {
	bad := []string{`{`, `[`, `[1,]`, `[1 2]`, `{"a"}`, `{"a":}`, `{a:1}`, `01`, `1.`, `.5`, `1e`, `-`, `+1`,
		`"abc`, `"\x"`, `"\u12"`, "\"\x01\"", `tru`, `nul`, `1 2`, `[1]]`, `{"a":1,}`, `NaN`, `Infinity`,
		`"\ud800\u"`, `[1,"a"`, strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1)}
	for _, v := range bad {
		if json.Valid([]byte(v)) {
			t.Fatalf("test case %q is valid JSON", v)
		}
		d := entity.Diff{Updates: map[string]entity.Components{"e": {"c": json.RawMessage(v)}}}
		out, err := AppendDiff([]byte("x"), d)
		if !errors.Is(err, ErrInvalidJSON) {
			t.Errorf("%q: err %v, want ErrInvalidJSON", v, err)
		}
		if string(out) != "x" {
			t.Errorf("%q: dst not returned as given: %q", v, out)
		}
	}
	deep := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	if _, err := AppendDiff(nil, entity.Diff{Creates: map[string]entity.Components{"e": {"c": json.RawMessage(deep)}}}); err != nil {
		t.Errorf("max depth value: %v", err)
	}
}

// TestExampleSize pins the size of the example moved entity so regressions show.
func TestExampleSize(t *testing.T) {
	d := movedDiff(500)
	c, _ := AppendDiff(nil, d)
	j := d.AppendJSON(nil)
	t.Logf("500 moved entities: compact %d bytes (%.1f/entity), JSON %d bytes (%.1f/entity)",
		len(c), float64(len(c))/500, len(j), float64(len(j))/500)
	if len(c)*3 > len(j) {
		t.Errorf("compact %d bytes is not under a third of JSON's %d", len(c), len(j))
	}
	checkRoundTrip(t, c, j)
}

func FuzzAppendDiff(f *testing.F) {
	for _, v := range edgeValues {
		f.Add("load-00001", "position", []byte(v))
	}
	f.Add("\xff", "\xed\xa0\x80", []byte(`"\xff\ud800"`))
	f.Fuzz(func(t *testing.T, id, name string, raw []byte) {
		d := entity.Diff{
			Creates: map[string]entity.Components{id: {name: raw, "z": json.RawMessage(`[1.5]`)}, id + "x": {}},
			Updates: map[string]entity.Components{"u": {name: raw}},
			Deletes: map[string]entity.Components{id: {}},
		}
		out, err := AppendDiff(nil, d)
		if valid := len(raw) == 0 || json.Valid(raw); valid != (err == nil) {
			t.Fatalf("json.Valid %v but err %v for %q", valid, err, raw)
		}
		if err != nil {
			return
		}
		checkRoundTrip(t, out, d.AppendJSON(nil))
	})
}

// TestJSDecoderMatchesJSON runs clients/js/check-compact.mjs on the compact and JSON encodings
// of many diffs and states: node's decode must deepStrictEqual JSON.parse of the JSON.
func TestJSDecoderMatchesJSON(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node not found, and CI is set")
		}
		t.Skip("node not found")
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "clients", "js", "check-compact.mjs")
	dir := t.TempDir()
	n := 0
	write := func(kind string, bin, js []byte) {
		n++
		name := filepath.Join(dir, fmt.Sprintf("%s-%05d", kind, n))
		if err := os.WriteFile(name+".bin", bin, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name+".json", js, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	diffs := edgeDiffs()
	r := rand.New(rand.NewPCG(5, 6))
	for range 1000 {
		diffs = append(diffs, randomDiff(r))
	}
	diffs = append(diffs, movedDiff(500))
	for _, d := range diffs {
		bin, err := AppendDiff(nil, d)
		if err != nil {
			t.Fatal(err)
		}
		write("diff", bin, d.AppendJSON(nil))
		s := entity.State(d.Updates)
		if bin, err = AppendState(nil, s); err != nil {
			t.Fatal(err)
		}
		write("state", bin, s.AppendJSON(nil))
	}
	out, err := exec.Command(node, script, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}
