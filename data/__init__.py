"""flowers.data: shards from photos (Beam converter), their layout, the bundled sample and schema."""
