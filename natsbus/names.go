package natsbus

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/internal/topicname"
)

// maxStreamName is the broker's limit on stream and consumer names.
const maxStreamName = 255

// maxReadable bounds the readable part of a derived consumer name, so that
// the whole name stays far below every limit (the broker's 255 bytes, and
// a file name on the broker's disk).
const maxReadable = 64

// consumerKind keeps the consumers of a Name and of a Group apart even
// when both are the same string.
type consumerKind string

const (
	kindName  consumerKind = "name"
	kindGroup consumerKind = "group"
)

// consumerName derives the durable consumer name of a subscription: the
// topic and name made legal (only letters, digits, '-' and '_'), cut to
// maxReadable bytes, then '_' and 16 hex digits of a SHA-256 of the
// original kind, topic and name. Sanitising alone would map "a.b" and
// "a_b" to one consumer, and cutting would merge long names; the hash keeps
// distinct subscriptions apart, while the readable part lets an operator
// recognise the consumer.
func consumerName(kind consumerKind, topic, name string) string {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write([]byte(name))
	sum := h.Sum(nil)
	return readable(topic+"-"+name) + "_" + hex.EncodeToString(sum[:8])
}

// ephemeralName names an ephemeral consumer: the topic made legal and 16
// random hex digits, so that Stop can delete exactly this consumer.
func ephemeralName(topic string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return readable(topic) + "_" + hex.EncodeToString(b[:])
}

// readable replaces every byte that is not a letter, digit, '-' or '_' by
// '_' and cuts the result to maxReadable bytes.
func readable(s string) string {
	if len(s) > maxReadable {
		s = s[:maxReadable]
	}
	b := []byte(s)
	for i, c := range b {
		if !isNameByte(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// checkStreamName accepts 1 to 255 letters, digits, '-' and '_': a subset
// of what the broker accepts that is also safe as a directory name.
func checkStreamName(name string) error {
	if name == "" || len(name) > maxStreamName {
		return fmt.Errorf("want 1 to %d bytes, got %d", maxStreamName, len(name))
	}
	for i := 0; i < len(name); i++ {
		if !isNameByte(name[i]) {
			return fmt.Errorf("byte %q at %d is not a letter, digit, '-' or '_'", name[i], i)
		}
	}
	return nil
}

// checkTopic applies the topic name rule of the eventbus package, so that
// a topic is always a literal subject suffix (no wildcard, no space).
func checkTopic(topic string) error {
	if err := topicname.Check(topic); err != nil {
		return fmt.Errorf("%w: %q: %v", eventbus.ErrInvalidTopic, topic, err)
	}
	return nil
}
