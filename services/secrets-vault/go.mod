module github.com/forgeapps/backbone/services/secrets-vault

go 1.26.8

require github.com/forgeapps/backbone/pkg v0.0.0

replace github.com/forgeapps/backbone/pkg => ../../pkg
