"""Meta-learning algorithms; losses are pure functions of (network outputs, batch)."""
