"""The viewer's state and its jobs, without Qt: what is loaded, the map on screen, the channel."""
