package edge

// NEGPolling is the NEG lookup's backoff, which tests replace with a fake clock.
var NEGPolling = &negPolling
