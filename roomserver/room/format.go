package room

import (
	"fmt"

	"github.com/xrooms/xrooms/roomserver/protocol"
)

// Encoding is how a member receives entities_state and entities_diff, chosen at join.
type Encoding string

const (
	// EncodingJSON sends them as JSON in text frames, as every Phoenix client reads them.
	EncodingJSON Encoding = "json"
	// EncodingCompact sends them as Phoenix V2 binary frames holding package compact's
	// encoding, which clients decode with clients/js/xrooms-compact.mjs: about a third of
	// JSON's bytes for moving entities.
	EncodingCompact Encoding = "compact"
)

// ParseEncoding checks a join's encoding for a socket of version v; "" is JSON.
func ParseEncoding(s string, v protocol.Version) (Encoding, error) {
	switch Encoding(s) {
	case "", EncodingJSON:
		return EncodingJSON, nil
	case EncodingCompact:
		if v != protocol.V2 {
			return "", fmt.Errorf("encoding %q needs binary frames: connect with vsn=2.0.0", s)
		}
		return EncodingCompact, nil
	}
	return "", fmt.Errorf("encoding must be %q or %q, not %q", EncodingJSON, EncodingCompact, s)
}

// format is what a member's entities_diff frames look like: a flush encodes one per format
// in use and shares it among that format's members.
type format uint8

const (
	formatV1JSON format = iota
	formatV2JSON
	formatV2Compact
	numFormats
)

func formatOf(v protocol.Version, e Encoding) format {
	switch {
	case e == EncodingCompact:
		return formatV2Compact
	case v == protocol.V1:
		return formatV1JSON
	}
	return formatV2JSON
}

func (f format) version() protocol.Version {
	if f == formatV1JSON {
		return protocol.V1
	}
	return protocol.V2
}

func (f format) String() string {
	return [...]string{"v1 json", "v2 json", "v2 compact"}[f]
}
