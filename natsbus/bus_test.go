package natsbus_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/quantumtrader/eventbus"
	"github.com/quantumtrader/eventbus/eventbustest"
	"github.com/quantumtrader/eventbus/natsbus"
	"github.com/quantumtrader/eventbus/natsbus/natstest"
)

// newNATSBus returns a function making buses that share one stream on srv,
// as processes of one system would.
func newNATSBus(srv *natstest.Server, names natstest.Names) func(t *testing.T) *eventbus.Bus {
	return func(t *testing.T) *eventbus.Bus {
		t.Helper()
		nc := srv.Connect(t)
		tr, err := natsbus.New(nc, names.Options()...)
		require.NoError(t, err)
		bus, err := eventbus.New(eventbus.WithTransport(tr), eventbus.WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		return bus
	}
}

func TestNATSBusPassesTheConformanceSuite(t *testing.T) {
	srv := natstest.Start(t)
	eventbustest.RunBus(t, newNATSBus(srv, srv.Names(t)), eventbustest.Capabilities{
		Latest:        true,
		DurableResume: true,
		Timeout:       20 * time.Second,
	})
}
