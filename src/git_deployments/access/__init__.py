"""Who may do what through the server: tokens and the reference's three permissions."""
