-- wrk script: POST one realistic call attempt to the admission endpoint.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"tenant_id":"t_01J9Z6Q4K7M2","user_id":"u_01J9Z6R8XW3F","caller":"+442071838750","destination":"+14155550123","direction":"outbound","call_id":"a84b4c76e66710-1f3c9d2e@pbx-07.acme-contact.example.com","source_ip":"203.0.113.17","at":1767225600.125}'
