FROM --platform=$BUILDPLATFORM alpine AS base
