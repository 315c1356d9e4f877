module github.com/difflore/difflore/integration/agents

go 1.26.8
