"""Email notifications of pledges: jobs, messages, SMTP, confirm links."""
