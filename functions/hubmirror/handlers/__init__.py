"""Lambda entry points: parse the event, call one function, return a small dict."""
