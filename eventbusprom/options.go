package eventbusprom

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrInvalidOption is wrapped by the error New returns for an invalid
// option value, such as a namespace or a label name Prometheus would not
// accept.
var ErrInvalidOption = errors.New("eventbusprom: invalid option")

// ErrNilBus is returned by New when it is given no bus.
var ErrNilBus = errors.New("eventbusprom: nil bus")

// DefaultNamespace is the first part of every metric name unless
// WithNamespace says otherwise: eventbus_events_published_total.
const DefaultNamespace = "eventbus"

// An Option configures a Collector; see New.
type Option func(*config) error

type config struct {
	namespace   string
	constLabels prometheus.Labels
}

// A legacy Prometheus name: scrapers that predate UTF-8 names accept it too.
var legacyName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// WithNamespace replaces DefaultNamespace as the first part of every metric
// name, e.g. WithNamespace("orders") exports
// orders_events_published_total. ns must be a Prometheus name: a letter or
// underscore, then letters, digits and underscores. To tell apart two buses
// under the same names, use WithConstLabels instead, which keeps
// dashboards and queries shared.
func WithNamespace(ns string) Option {
	return func(c *config) error {
		if !legacyName.MatchString(ns) {
			return fmt.Errorf("%w: WithNamespace(%q): want a letter or '_', then letters, digits or '_'", ErrInvalidOption, ns)
		}
		c.namespace = ns
		return nil
	}
}

// WithConstLabels adds labels with fixed values to every metric the
// Collector exports, e.g. prometheus.Labels{"bus": "orders"}: the way to
// register the collectors of two buses in one registry. A name must be a
// Prometheus label name, not start with "__", and not be one of the labels
// the Collector sets itself (topic, subscription, quantile). Calling it
// more than once adds to the labels; a later value of a name wins.
func WithConstLabels(labels prometheus.Labels) Option {
	return func(c *config) error {
		for name := range labels {
			switch {
			case !legacyName.MatchString(name) || strings.HasPrefix(name, "__"):
				return fmt.Errorf("%w: WithConstLabels: label name %q: want a letter or '_', then letters, digits or '_', not starting with \"__\"", ErrInvalidOption, name)
			case name == labelTopic || name == labelSubscription || name == labelQuantile:
				return fmt.Errorf("%w: WithConstLabels: label name %q is the Collector's own", ErrInvalidOption, name)
			}
		}
		if c.constLabels == nil {
			c.constLabels = prometheus.Labels{}
		}
		maps.Copy(c.constLabels, labels)
		return nil
	}
}
