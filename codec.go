package eventbus

import "encoding/json"

// Codec turns payloads into bytes and back for a Transport. The in-memory
// bus never encodes; a bus with WithTransport encodes every payload with its
// codec (default JSON). Implementations must be safe for concurrent use.
type Codec interface {
	// Marshal encodes v, a payload of some topic's type T.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer to a T.
	Unmarshal(data []byte, v any) error
}

// JSON is the default Codec: encoding/json, so payloads keep the JSON keys
// of their struct tags and Go and Python services share the wire format.
var JSON Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
