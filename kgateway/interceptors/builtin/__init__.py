"""The interceptors that ship with kgateway (registered in kgateway/plugins/)."""
