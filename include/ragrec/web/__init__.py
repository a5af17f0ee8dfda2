"""What both HTTP services (the search API and the model server) share: one error
envelope, the token and body-size guard, OpenAPI completion."""
