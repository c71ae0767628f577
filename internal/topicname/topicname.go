// Package topicname holds the rule for topic names that package eventbus
// enforces and natsbus relies on: 1 to 255 bytes of dot-separated, non-empty
// tokens of letters, digits, '_' and '-', so that a name is always a literal
// NATS subject suffix (no wildcard, no space).
package topicname

import "fmt"

// Check returns nil if name follows the rule, and otherwise an error saying
// what is wrong (without the name, which callers quote themselves).
func Check(name string) error {
	if len(name) == 0 || len(name) > 255 {
		return fmt.Errorf("want 1 to 255 bytes, got %d", len(name))
	}
	tokenLen := 0
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '.':
			if tokenLen == 0 {
				return fmt.Errorf("empty token at byte %d", i)
			}
			tokenLen = 0
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
			tokenLen++
		default:
			return fmt.Errorf("byte %q at %d is not a letter, digit, '_', '-' or '.'", c, i)
		}
	}
	if tokenLen == 0 {
		return fmt.Errorf("empty last token")
	}
	return nil
}
