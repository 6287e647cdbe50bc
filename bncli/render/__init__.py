"""Results -> Rich tables, JSON and plots. Renderers return objects or write files; they never print."""
