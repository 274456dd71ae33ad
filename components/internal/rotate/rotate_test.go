package rotate_test

import (
	"testing"

	"github.com/omscloud/omscloud/components/internal/rotate"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// generation is the generation a slot's keepers name ("" for none).
func generation(t *testing.T, rotation, slot int) string {
	t.Helper()
	k := rotate.Keepers(rotation, slot)
	if k == nil {
		return ""
	}
	require.Len(t, k, 1)
	return k["rotation"]
}

func TestEachRotationRegeneratesOnlyTheSlotClientsUseNext(t *testing.T) {
	for _, tc := range []struct {
		rotation     int
		slot0, slot1 string
	}{
		{0, "", ""}, // an existing single password is slot 0, unchanged
		{1, "", "1"},
		{2, "2", "1"},
		{3, "2", "3"},
		{4, "4", "3"},
	} {
		assert.Equal(t, tc.slot0, generation(t, tc.rotation, 0), "slot 0 at rotation %d", tc.rotation)
		assert.Equal(t, tc.slot1, generation(t, tc.rotation, 1), "slot 1 at rotation %d", tc.rotation)
		if tc.rotation > 0 {
			current := tc.rotation % 2
			assert.NotEqual(t, generation(t, tc.rotation-1, current), generation(t, tc.rotation, current), "the new current slot is regenerated")
			assert.Equal(t, generation(t, tc.rotation-1, 1-current), generation(t, tc.rotation, 1-current), "the previous value is kept")
		}
	}
}
