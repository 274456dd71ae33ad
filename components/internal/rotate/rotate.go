// Package rotate keeps a generated password in two slots, so that rotating it never refuses a client that still
// holds the previous value: the server accepts both slots' values, clients use the current slot's, and each rotation
// regenerates only the other slot, which no client uses. Raising the rotation count by one therefore rotates with
// an overlap; raising it by two at once (or `pulumi up --replace` of the current slot) leaves none.
package rotate

import (
	"fmt"
	"strconv"

	"github.com/pulumi/pulumi-random/sdk/v4/go/random"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// Pair is a credential's two slots.
type Pair struct {
	// Current is the value clients use: slot Rotation % 2 (secret).
	Current pulumi.StringOutput
	// Previous is the other slot's value, which servers still accept (secret).
	Previous pulumi.StringOutput
	// CurrentSlot is 0 or 1.
	CurrentSlot int
}

// Passwords declares the two slots: slot 0 is named name, so that a single password declared before becomes slot 0
// with its value, and slot 1 name+"-1". A slot is regenerated when the rotation count reaches its parity (its keepers
// change, which replaces a RandomPassword); the first generation of each slot has no keepers.
func Passwords(ctx *pulumi.Context, name string, rotation int, args random.RandomPasswordArgs, opts ...pulumi.ResourceOption) (*Pair, error) {
	if rotation < 0 {
		return nil, fmt.Errorf("rotation %d: count rotations from 0", rotation)
	}
	var slots [2]pulumi.StringOutput
	for slot := range 2 {
		a := args
		if k := Keepers(rotation, slot); k != nil {
			a.Keepers = pulumi.ToStringMap(k)
		}
		logical := name
		if slot == 1 {
			logical = name + "-1"
		}
		pw, err := random.NewRandomPassword(ctx, logical, &a, opts...)
		if err != nil {
			return nil, fmt.Errorf("password slot %d: %w", slot, err)
		}
		slots[slot] = pulumi.ToSecret(pw.Result).(pulumi.StringOutput)
	}
	current := rotation % 2
	return &Pair{Current: slots[current], Previous: slots[1-current], CurrentSlot: current}, nil
}

// Keepers are a slot's keepers at a rotation count: the last generation of the slot's parity, none before its first
// rotation.
func Keepers(rotation, slot int) map[string]string {
	generation := rotation
	if rotation%2 != slot {
		generation--
	}
	if generation <= 0 {
		return nil
	}
	return map[string]string{"rotation": strconv.Itoa(generation)}
}
