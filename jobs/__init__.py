"""Jobs: the job model, submission, results, JUnit, the HTTP API."""
