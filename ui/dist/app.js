// placeholder: the page lands with issue 24
