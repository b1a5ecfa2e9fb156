"""What a run carries besides the arrays: its checkpoint (`checkpoint`), its progress
events (`events`), and the memory plan that sizes its patches (`memory`)."""
