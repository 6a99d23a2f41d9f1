package jsonsyntax

import (
	"encoding/json"
	"strings"
	"testing"
)

// pieces are fragments of JSON and of frames, valid and not, to be put together.
var pieces = []string{
	`null`, `"1"`, `"a\"b"`, `"\u0041"`, `"é"`, `"<&>"`, `""`, `"room:lobby"`, `"i_moved"`, `"event"`,
	`1`, `-0.5e3`, `true`, `false`, `[]`, `{}`, `[1,[2,{"a":"]"}]]`, `{"a":{"b":"}"}}`, ` `, "\t", "\n",
	`"\\"`, `"\ud800"`, "\"\xff\"", `{"position":[1,2,3],"rotation":[0,0,0,1],"seq":7}`,
	`{"a":1,"a":2}`, `{"user_id":"x"}`, `{"event_name":"e","payload":{"k":null}}`, `{"\u0061":1}`,
	`{"é":1}`, `{ "a" : [ 1 , 2 ] , "b" : "c" }`, `,`, `[`, `]`, `{`, `}`, `:`,
}

// pushFrame is the frame clients send most.
const pushFrame = `["3","12","room:lobby","i_moved",{"position":[1.234,0.5,-2.001],"rotation":[0,0.7071,0,0.7071],"seq":42}]`

// validCases are inputs where a JSON validator may go wrong; each is checked against
// json.Valid rather than a written answer, so Valid cannot drift from it.
var validCases = []string{
	"", " ", " \t\r\n", "\f1", "\v1", "\u00a01", "1\u00a0", "\x001",
	// lone values
	`0`, `1`, `-1`, `true`, `false`, `null`, `""`, `{}`, `[]`, ` [ ] `, ` { } `, "\t\"a\"\r\n",
	// numbers
	`01`, `00`, `-01`, `-`, `--1`, `+1`, `1.`, `.5`, `-.5`, `1.5`, `1.5.`, `1e`, `1e+`, `1e-`, `1E5`,
	`1e+5`, `1e-05`, `1e5.5`, `-0`, `-0.0`, `0e0`, `0.e1`, `1ee5`, `1e999999999`, `-1e-999999999`,
	`123456789012345678901234567890`, `0x10`, `1_000`, `Infinity`, `NaN`, `-Infinity`, `1 2`, `[1 2]`,
	// strings and escapes
	`"abc`, `"\"`, `"\\"`, `"\""`, `"\/"`, `"\b\f\n\r\t"`, `"\u0041"`, `"\u00e9\uD800\udc00"`, `"\u12"`,
	`"\u12"x"`, `"\u123"`, `"\u123g"`, `"\uXXXX"`, `"\U0041"`, `"\x41"`, `"\a"`, `"\'"`, `"\0"`, `"\`,
	`"\u`, "\"a\x00b\"", "\"\x1f\"", "\"\t\"", "\"\n\"", "\"\x7f\"", "\"\x80\"", "\"\xff\"",
	"\"\xc3\xa9\"", "\"\xc3\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\xef\xbb\xbf1", "\x80", `'a'`,
	// literals
	`truex`, `true x`, `nul`, `nulll`, `tru`, `True`, `NULL`, `fals`, `falsey`, `[true,false,null]`,
	`[t]`, `{"a":nul}`,
	// arrays and objects
	`[1,]`, `[,1]`, `[,]`, `[1,,2]`, `[1 2]`, `[`, `]`, `[[]`, `[]]`, `[}`, `{]`, `{"a":1,}`, `{,}`,
	`{"a" 1}`, `{"a"::1}`, `{"a":1 "b":2}`, `{"a"}`, `{"a":}`, `{a:1}`, `{1:1}`, `{null:1}`,
	`{"a":1,"a":2}`, `{"a":[1,{"b":null}],"c":{"d":[]}}`, `{"a":1}}`, `{"a":1]`, `[1}`, `{"a":1,"b"}`,
	// trailing garbage
	`{} {}`, `[][]`, `1,`, `"a""b"`, `null,`, "{}\x00", `{}/`, `1 x`,
	// frames
	pushFrame,
	`["3","12","room:lobby","i_moved",{"position":[1.234,0.5,-2.001],"rotation":[0,0.7071,0,0.7071],"seq":42}`,
	`["3","12","room:lobby","i_moved",{"position":[1.234,0.5,-2.001],"rotation":[0,0.7071,0,0.7071],"seq":42,}]`,
}

// nested returns n times open, a value, and n times closing.
func nested(open, closing string, n int, value string) string {
	return strings.Repeat(open, n) + value + strings.Repeat(closing, n)
}

// deepCases are nesting depths around encoding/json's limit, and hostile unclosed input.
func deepCases() []string {
	var cases []string
	for _, n := range []int{63, 64, 65, 255, 256, 257, 9999, 10000, 10001, 20000} {
		cases = append(cases,
			nested("[", "]", n, ""), nested("[", "]", n, "1"), nested(`{"a":`, "}", n, "{}"),
			nested(`[{"a":`, "}]", n/2, "[]"), nested("[", "]", n, "")+" ", nested("[", "]", n, "")[1:],
			strings.Repeat("[", n), nested("[", "]", n, "")+"]")
	}
	return append(cases, strings.Repeat("[", 1<<20), strings.Repeat(`{"":`, 1<<18))
}

func checkValid(t *testing.T, data []byte) {
	t.Helper()
	if got, want := Valid(data), json.Valid(data); got != want {
		t.Fatalf("Valid(%.200q) = %v, json.Valid %v", data, got, want)
	}
}

func TestValid(t *testing.T) {
	for _, c := range append(validCases, deepCases()...) {
		checkValid(t, []byte(c))
		// Each case also inside an array, an object, and around whitespace.
		checkValid(t, []byte("["+c+"]"))
		checkValid(t, []byte(`[1,`+c+`]`))
		checkValid(t, []byte(`{"k":`+c+`}`))
		checkValid(t, []byte(`{"k":`+c+`,"l":2}`))
		checkValid(t, []byte(" "+c+"\n"))
	}
}

// TestValidStringBytes puts each kind of byte at each offset of strings long enough to be
// read eight bytes at a time.
func TestValidStringBytes(t *testing.T) {
	for _, b := range []string{"\x00", "\x1f", " ", "!", `"`, "#", `\`, "]", "\x7f", "\x80", "\xa2", "\xdc", "\xff", `\"`, `\u0041`, `\u00`} {
		for k := range 20 {
			for _, tail := range []string{"", "a", "abcdefgh", "abcdefghijklmnop\x01"} {
				s := `"` + strings.Repeat("a", k) + b + tail + `"`
				checkValid(t, []byte(s))
				checkValid(t, []byte(s[:len(s)-1]))
				checkValid(t, []byte(`{`+s+`:1}`))
			}
		}
	}
}

func TestValidPieces(t *testing.T) {
	for _, a := range pieces {
		for _, b := range pieces {
			checkValid(t, []byte(a+b))
			checkValid(t, []byte("["+a+","+b+"]"))
			checkValid(t, []byte(`{"k":`+a+`,`+b+`}`))
		}
	}
}

func TestValidAllocs(t *testing.T) {
	frame := []byte(pushFrame)
	deep := []byte(nested("[", "]", 256, ""))
	if n := testing.AllocsPerRun(100, func() { Valid(frame); Valid(deep) }); n != 0 {
		t.Errorf("Valid allocates %v times", n)
	}
}

// FuzzValid's seeds leave out deepCases, whose 20 KB inputs slow it to a crawl; TestValid
// has them.
func FuzzValid(f *testing.F) {
	for _, c := range validCases {
		f.Add([]byte(c))
	}
	for _, p := range pieces {
		f.Add([]byte(p))
	}
	f.Fuzz(checkValid)
}

// benchObject returns a ~2 KB object of nested objects, arrays, numbers and strings.
func benchObject() []byte {
	var b strings.Builder
	b.WriteString(`{"entities":{`)
	for i := range 15 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"player-` + string(rune('a'+i)) + `":{"position":[1.2345,-3.5,0.25],` +
			`"rotation":[0,0.7071,0,0.7071],"name":"Ada \u00e9 \"L\"","tags":["red",true,null],"hp":1e2}`)
	}
	b.WriteString(`},"seq":123456}`)
	return []byte(b.String())
}

func BenchmarkValid(b *testing.B) {
	for _, in := range []struct {
		name string
		data []byte
	}{
		{"frame", []byte(pushFrame)},
		{"object", benchObject()},
	} {
		if !json.Valid(in.data) {
			b.Fatalf("%s: invalid", in.name)
		}
		for _, v := range []struct {
			name  string
			valid func([]byte) bool
		}{{"jsonsyntax", Valid}, {"json", json.Valid}} {
			b.Run(in.name+"/"+v.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(in.data)))
				for b.Loop() {
					if !v.valid(in.data) {
						b.Fatal("invalid")
					}
				}
			})
		}
	}
}
