"""nftables tables owned whole: `render` builds a table's text (pure), `kernel` observes and
loads it (libnftables or the nft binary). This package imports neither, so importing the pure
renderer never loads the effectful side."""
