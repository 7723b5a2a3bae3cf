"""Which provider sends a delivery: routes by destination, and breakers that skip a failing
provider for a cool-down so traffic moves to the next one."""
