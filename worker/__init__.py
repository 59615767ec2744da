"""RQ workers that execute jobs in sandboxes."""
