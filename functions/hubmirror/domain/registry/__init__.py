"""What a registry answers and fails with, by name: the shapes the pure steps decide on. Pure."""
