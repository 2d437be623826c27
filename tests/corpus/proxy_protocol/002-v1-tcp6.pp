PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535
GET / HTTP/1.1
Host: a

