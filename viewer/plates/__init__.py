"""License plates on dense maps: reading a crop's characters, finding plates in photos."""
