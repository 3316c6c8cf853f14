"""Networks as pure functions of parameter dicts: plain and weight-transform layers, MACAW's
policy (with advantage head) and value networks."""
