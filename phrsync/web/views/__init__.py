"""The pages, one module per kind; each module has a ``router`` (a FastAPI APIRouter)."""
