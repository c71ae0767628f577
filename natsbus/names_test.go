package natsbus

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

var legalName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,81}$`)

func TestConsumerName(t *testing.T) {
	type sub struct {
		kind        consumerKind
		topic, name string
	}
	// Pairs that a plain sanitiser or a plain cut would merge.
	subs := []sub{
		{kindName, "trade.executed", "ledger"},
		{kindGroup, "trade.executed", "ledger"},
		{kindName, "trade.executed", "ledger v2"},
		{kindName, "trade.executed", "ledger_v2"},
		{kindName, "trade.executed", "ledger.v2"},
		{kindName, "trade.executed", "ledger*v2"},
		{kindName, "trade.executed", "ledger>v2"},
		{kindName, "trade.executed-ledger", ""},
		{kindName, "trade.executed", "-ledger"},
		{kindName, "trade", "executed-ledger"},
		{kindName, "trade.executed", strings.Repeat("x", 100)},
		{kindName, "trade.executed", strings.Repeat("x", 101)},
		{kindName, "trade.executed", "ключ"},
		{kindName, "trade.executed", "\x00"},
		{kindName, "trade.executed", ""},
	}
	seen := map[string]sub{}
	for _, s := range subs {
		got := consumerName(s.kind, s.topic, s.name)
		assert.Regexp(t, legalName, got, "%+v", s)
		if prev, dup := seen[got]; dup {
			t.Errorf("%+v and %+v both map to %q", prev, s, got)
		}
		seen[got] = s
		assert.Equal(t, got, consumerName(s.kind, s.topic, s.name), "stable for %+v", s)
	}
	// A durable consumer is found again by this name after a restart, so
	// the derivation must never change: a new one would orphan every
	// durable consumer and start its subscription over.
	assert.Equal(t, "trade_executed-ledger_f869c18adce5a88e", consumerName(kindName, "trade.executed", "ledger"),
		"the name doc.go shows")
}

func TestEphemeralName(t *testing.T) {
	a, b := ephemeralName("trade.executed"), ephemeralName("trade.executed")
	assert.NotEqual(t, a, b)
	assert.Regexp(t, legalName, a)
	assert.Regexp(t, legalName, ephemeralName(strings.Repeat("very.long.topic", 17)))
}

func FuzzConsumerName(f *testing.F) {
	f.Add("trade.executed", "ledger")
	f.Add("a.b", "c d*>")
	f.Add("", "\xff")
	f.Fuzz(func(t *testing.T, topic, name string) {
		got := consumerName(kindName, topic, name)
		if !legalName.MatchString(got) {
			t.Fatalf("consumerName(%q, %q) = %q, not a legal name", topic, name, got)
		}
		if got == consumerName(kindGroup, topic, name) {
			t.Fatalf("a name and a group share consumer %q", got)
		}
	})
}
