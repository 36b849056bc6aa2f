"""Table layouts beyond one plain server (the public door is ``convostore.layouts``)."""
